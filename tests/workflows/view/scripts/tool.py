VERSION = "v1"

with open("config/version.txt") as config:
    print("python", VERSION, config.read().strip())
