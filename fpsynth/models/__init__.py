"""CCFExp networks: U-Net, IR-50, MobileFaceNet, expression encoder, cross-fusion."""
