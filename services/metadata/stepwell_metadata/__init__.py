"""Stepwell metadata service: contexts, executions, artifacts and their lineage (gRPC, port 8890).

Modules: ``domain`` (dataclasses), ``models`` (``md_*`` tables), ``migrations/`` (Alembic,
version table ``alembic_version_metadata``), ``repository`` (queries on a caller's session),
``service`` (validation and transactions), ``servicer`` (protobuf edge), ``settings``,
``app`` (:class:`~stepwell_metadata.app.MetadataApp`, to run or mount the service) and
``main`` (the ``stepwell-metadata`` command).
"""
