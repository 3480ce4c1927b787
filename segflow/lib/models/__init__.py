"""Models: the segmentation sweep and selection, naming, personas, churn and CLV."""
