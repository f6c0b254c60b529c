"""placeholder"""
def check(cell, sizes, T, what):
    return None
