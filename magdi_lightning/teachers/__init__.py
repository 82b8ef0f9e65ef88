"""The teacher side: LLM endpoints, discussion and prompting protocols that write MAG
JSONL directly, and the fault-tolerant, resumable runner behind ``magdi-debate``."""
