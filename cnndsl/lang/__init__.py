"""The language: text -> AST -> IR (syntax, AST nodes, elaboration, values, arguments)."""
