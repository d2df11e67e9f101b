"""Tasks and their data: the registry (tasks), where examples come from (embedded, instruct, hub; one entry
point in splits) and the pinned format they are tokenised in (format)."""
