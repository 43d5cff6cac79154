"""The plan/apply core: steps, one commit point, the commands' plans, the .env view."""
