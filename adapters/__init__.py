"""Source adapters: read each source style at the edge and map its records to FHIR R4."""
