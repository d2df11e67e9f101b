"""The methods IAPT is compared with (peft_methods) and the registry that builds, sizes, saves and loads every method (registry)."""
