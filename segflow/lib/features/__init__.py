"""Features as of a month's end: RFM, behaviour, category mix and the snapshot set."""
