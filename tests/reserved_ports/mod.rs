mod input;
mod kernel;
