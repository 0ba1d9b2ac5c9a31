//! Serve the OpenAI-compatible HTTP API: chat completions, models, health and metrics.
#![deny(missing_docs)]
