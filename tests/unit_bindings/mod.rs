mod containers;
mod input;
mod kernel;
