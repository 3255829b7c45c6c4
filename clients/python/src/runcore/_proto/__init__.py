"""Generated gRPC stubs of proto/runcore/v1/runcore.proto.

Do not edit: regenerate with clients/python/scripts/gen_proto.sh.
"""
