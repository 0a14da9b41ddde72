mod concurrency;
mod containers;
mod input;
mod kernel;
