"""``BaseInstrumentor`` subclasses, one per SDK, registered as ``opentelemetry_instrumentor`` entry points."""
