"""Framework-free data code: Kaggle layout, cleaning, preprocessing, cache, augmentation, splits."""
