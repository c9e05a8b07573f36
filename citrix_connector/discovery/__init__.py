"""Discovery of a brownfield fleet: every certkey on the appliances (bulk, read-only reads), matched
to SCM by serial, findings with advice, and ready profiles that adopt what is installed.

``targets`` (what to read) -> ``nitro.inventory`` (bulk reads) -> ``build`` (entries) -> ``scm_match``
-> ``findings`` -> ``report`` (table/JSON) and ``profiles`` (profile writer); ``runner`` ties them.
"""
