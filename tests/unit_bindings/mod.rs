mod bounds;
mod containers;
mod input;
mod kernel;
