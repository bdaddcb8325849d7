"""Run once per AWS account by an administrator, with local state: see README, "AWS set-up"."""
