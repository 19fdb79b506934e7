"""File search ingestion: turning uploaded documents into text and token chunks."""
