//! The AudioLDM2 prior: where its weights live (and, later, the networks themselves).

mod locate;

pub use locate::ModelSearch;
