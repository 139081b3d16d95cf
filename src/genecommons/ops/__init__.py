"""Operations: liveness, readiness and the Prometheus metrics of a running node."""
