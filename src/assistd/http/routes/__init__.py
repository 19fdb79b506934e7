"""One router per resource; handlers parse, call one service function, return."""
