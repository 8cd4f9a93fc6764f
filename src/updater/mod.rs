//! The updater API (compatible with nginx-lb-updater): the client the controller uses, and our own
//! `paperlb nginx-updater` server that turns requests into nginx stream configuration.
pub mod cli;
