"""TODO(restructure)"""
