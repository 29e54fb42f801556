"""Test utilities shipped with the package, as optuna.testing and tfds.testing are: the tiny config, generated data
files, the tables of broken configs and bad inputs, and moe-tf processes read with a deadline. The test suite and the
robustness benchmark both use them (a benchmark never imports the tests)."""
