//! lookout-alerts
