"""Data for the C2G attack: EMNIST loading and the paper's label settings."""


class DataError(ValueError):
  """A dataset is missing, not prepared, or asked for by an unknown name."""
