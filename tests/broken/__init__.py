"""Deliberately broken variants of the reference server, used to prove the harness catches them."""
