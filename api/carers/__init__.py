"""Foster carers (assistants familiaux) declaring their availability."""
