//! lookout-infer
