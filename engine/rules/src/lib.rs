//! lookout-rules
