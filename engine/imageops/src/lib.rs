//! lookout-imageops
