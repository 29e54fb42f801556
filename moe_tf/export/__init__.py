"""SavedModel export of a trained run, and prediction with an export."""
