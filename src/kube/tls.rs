//! (placeholder: to be written)
