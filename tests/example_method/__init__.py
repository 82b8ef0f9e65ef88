"""The worked example of docs/add-a-method.md: a fourth method, outside the package."""
