"""recsys-tune: hyperparameter search for recommender models."""
