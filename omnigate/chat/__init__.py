"""The unified chat vocabulary every surface and provider speaks: requests, results, stream chunks, usage."""
