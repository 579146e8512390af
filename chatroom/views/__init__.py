"""The HTTP views, one module per thing a user does."""
