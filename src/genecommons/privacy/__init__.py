"""Privacy by design: what aggregate answers may reveal, differential privacy, pseudonyms."""
