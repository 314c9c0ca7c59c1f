//! Test harness: real servers on 127.0.0.1:0. Every handle shuts down on drop.
#![allow(dead_code)]

pub mod auth;
pub mod binary;
pub mod config;
pub mod echo;
pub mod gateway;
pub mod h2raw;
pub mod idp;
pub mod logs;
pub mod refusal;
pub mod upstream;
