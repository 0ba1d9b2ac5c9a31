//! Use and run the network from the outside: a typed client of a node's REST API, signing of
//! developer requests, the local signing OpenAI gateway, and local networks of node processes.
//!
//! - [`rest`]: [`rest::NodeClient`], which reads the same typed views the node serves.
//! - [`signing`]: the headers a developer sends with a request.
//! - [`gateway`]: `gonka gateway`, an OpenAI-compatible endpoint that signs for one developer key.
//! - [`devnet`]: N host homes sharing one genesis (`gonka devnet`, the tests and the benchmarks), and
//!   starting and stopping their node processes.
#![deny(missing_docs)]

pub mod devnet;
pub mod gateway;
pub mod rest;
pub mod signing;
