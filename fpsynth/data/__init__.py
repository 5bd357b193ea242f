"""Raw clinical data to aligned 112x112 crops and Parquet manifests (the prepare stage)."""
