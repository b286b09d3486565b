//! lookout-ingest
