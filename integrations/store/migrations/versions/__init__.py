"""Label store migrations, applied in order by ``LabelStore`` when it opens."""
