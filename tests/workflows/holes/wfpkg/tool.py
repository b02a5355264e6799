import wfpkg

print(wfpkg.VERSION)
