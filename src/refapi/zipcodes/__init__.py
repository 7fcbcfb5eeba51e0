"""zipcodes"""
