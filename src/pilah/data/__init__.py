"""The data set: scan a folder-per-class data set, find duplicates, split it, feed it to Keras in batches."""
