"""Built-in tools behind one ``Tool`` interface: file_search, code_interpreter, citations."""
