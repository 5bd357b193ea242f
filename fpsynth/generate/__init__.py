"""The generate stage: sampling plans and sharded, resumable dataset writing."""
