//! lookout-fusion
