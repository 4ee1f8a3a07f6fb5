
kiln-tests:9

xyrelu"Relug