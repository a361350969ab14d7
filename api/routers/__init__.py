"""One router per audience concern; each endpoint is a thin call into spatial."""
