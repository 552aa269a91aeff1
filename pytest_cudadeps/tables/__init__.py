"""Data only, each row with where it was read: driver versions, CUDA error codes, the wheels per CUDA
major, libraries opened by name at run time, optional plugins.  The code that walks them is elsewhere."""
