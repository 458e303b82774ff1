def sniff(text):
    return False
