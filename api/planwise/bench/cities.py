"""Real cities the benchmark clusters places around: centre, country, metro population.

Coordinates are city centres (to about 0.01°); populations are rough metropolitan
figures in millions, used only to weight how many places a city gets and how far they
spread. The list spans 54.8°S (Ushuaia) to 70.7°N (Hammerfest) on every continent, so
the benchmark exercises the latitudes where flat-degree distances go wrong.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchCity:
    name: str
    country: str
    lat: float
    lng: float
    population_m: float


# name|country|lat|lng|metro population in millions
_TABLE = """
Tokyo|JP|35.68|139.69|37.4
Delhi|IN|28.61|77.21|31.0
Shanghai|CN|31.23|121.47|27.1
Sao Paulo|BR|-23.55|-46.63|22.0
Mexico City|MX|19.43|-99.13|21.8
Cairo|EG|30.04|31.24|21.3
Mumbai|IN|19.08|72.88|20.7
Beijing|CN|39.90|116.41|20.5
Dhaka|BD|23.81|90.41|21.0
Osaka|JP|34.69|135.50|19.2
New York|US|40.71|-74.01|18.8
Karachi|PK|24.86|67.01|16.1
Buenos Aires|AR|-34.60|-58.38|15.2
Chongqing|CN|29.56|106.55|15.9
Istanbul|TR|41.01|28.98|15.2
Kolkata|IN|22.57|88.36|14.9
Manila|PH|14.60|120.98|13.9
Lagos|NG|6.52|3.38|14.4
Rio de Janeiro|BR|-22.91|-43.17|13.5
Tianjin|CN|39.34|117.36|13.6
Kinshasa|CD|-4.44|15.27|14.3
Guangzhou|CN|23.13|113.26|13.3
Los Angeles|US|34.05|-118.24|12.5
Moscow|RU|55.76|37.62|12.5
Shenzhen|CN|22.54|114.06|12.4
Lahore|PK|31.55|74.34|12.6
Bangalore|IN|12.97|77.59|12.3
Paris|FR|48.86|2.35|11.0
Bogota|CO|4.71|-74.07|10.9
Jakarta|ID|-6.21|106.85|10.8
Chennai|IN|13.08|80.27|10.9
Lima|PE|-12.05|-77.04|10.7
Bangkok|TH|13.76|100.50|10.5
Seoul|KR|37.57|126.98|9.9
Nagoya|JP|35.18|136.91|9.5
Hyderabad|IN|17.39|78.49|9.7
London|GB|51.51|-0.13|9.3
Tehran|IR|35.69|51.39|9.1
Chicago|US|41.88|-87.63|8.9
Chengdu|CN|30.57|104.07|8.8
Nanjing|CN|32.06|118.80|8.2
Wuhan|CN|30.59|114.31|8.2
Ho Chi Minh City|VN|10.82|106.63|8.6
Luanda|AO|-8.84|13.23|8.3
Ahmedabad|IN|23.02|72.57|8.1
Kuala Lumpur|MY|3.14|101.69|7.8
Xi'an|CN|34.34|108.94|7.9
Hong Kong|HK|22.32|114.17|7.5
Dongguan|CN|23.02|113.75|7.4
Hangzhou|CN|30.27|120.16|7.6
Foshan|CN|23.02|113.12|7.3
Shenyang|CN|41.81|123.43|7.2
Riyadh|SA|24.71|46.68|7.2
Baghdad|IQ|33.31|44.36|7.1
Santiago|CL|-33.45|-70.67|6.8
Surat|IN|21.17|72.83|6.9
Madrid|ES|40.42|-3.70|6.7
Suzhou|CN|31.30|120.59|6.7
Pune|IN|18.52|73.86|6.6
Harbin|CN|45.80|126.53|6.4
Houston|US|29.76|-95.37|6.4
Dallas|US|32.78|-96.80|6.3
Toronto|CA|43.65|-79.38|6.3
Dar es Salaam|TZ|-6.79|39.21|6.7
Miami|US|25.76|-80.19|6.1
Belo Horizonte|BR|-19.92|-43.94|6.0
Singapore|SG|1.35|103.82|5.9
Philadelphia|US|39.95|-75.17|5.7
Atlanta|US|33.75|-84.39|5.9
Fukuoka|JP|33.59|130.40|5.5
Khartoum|SD|15.50|32.56|5.8
Barcelona|ES|41.39|2.17|5.6
Johannesburg|ZA|-26.20|28.05|5.8
Saint Petersburg|RU|59.93|30.34|5.4
Qingdao|CN|36.07|120.38|5.6
Dalian|CN|38.91|121.61|5.3
Washington|US|38.91|-77.04|5.4
Yangon|MM|16.87|96.20|5.4
Alexandria|EG|31.20|29.92|5.3
Jinan|CN|36.65|117.12|5.1
Guadalajara|MX|20.66|-103.35|5.2
Ankara|TR|39.93|32.86|5.1
Chittagong|BD|22.36|91.78|5.1
Melbourne|AU|-37.81|144.96|5.0
Abidjan|CI|5.36|-4.01|5.2
Sydney|AU|-33.87|151.21|5.3
Monterrey|MX|25.69|-100.32|4.9
Nairobi|KE|-1.29|36.82|4.7
Hanoi|VN|21.03|105.85|4.9
Brasilia|BR|-15.79|-47.88|4.7
Cape Town|ZA|-33.92|18.42|4.7
Jeddah|SA|21.49|39.19|4.6
Phoenix|US|33.45|-112.07|4.8
Boston|US|42.36|-71.06|4.9
Kabul|AF|34.56|69.21|4.3
Recife|BR|-8.05|-34.88|4.2
Berlin|DE|52.52|13.40|4.5
Rome|IT|41.90|12.50|4.3
Casablanca|MA|33.57|-7.59|3.8
Porto Alegre|BR|-30.03|-51.23|4.1
Fortaleza|BR|-3.73|-38.53|4.1
San Francisco|US|37.77|-122.42|4.7
Montreal|CA|45.50|-73.57|4.2
Detroit|US|42.33|-83.05|4.3
Medellin|CO|6.24|-75.58|4.0
Salvador|BR|-12.97|-38.50|3.9
Kano|NG|12.00|8.52|4.1
Seattle|US|47.61|-122.33|4.0
Busan|KR|35.18|129.08|3.4
Athens|GR|37.98|23.73|3.6
Milan|IT|45.46|9.19|3.1
Kyiv|UA|50.45|30.52|3.5
Addis Ababa|ET|9.03|38.74|5.0
Accra|GH|5.60|-0.19|2.6
Izmir|TR|38.42|27.14|3.0
Algiers|DZ|36.75|3.06|2.8
Lisbon|PT|38.72|-9.14|2.9
Manchester|GB|53.48|-2.24|2.8
Dubai|AE|25.20|55.27|3.5
Tashkent|UZ|41.30|69.24|2.6
Caracas|VE|10.49|-66.88|2.9
Guayaquil|EC|-2.19|-79.89|3.0
Birmingham|GB|52.49|-1.89|2.6
Minneapolis|US|44.98|-93.27|3.7
San Diego|US|32.72|-117.16|3.3
Denver|US|39.74|-104.99|3.0
Taipei|TW|25.03|121.57|2.7
Baku|AZ|40.41|49.87|2.4
Havana|CU|23.11|-82.37|2.1
Curitiba|BR|-25.43|-49.27|3.7
Hamburg|DE|53.55|9.99|1.9
Vienna|AT|48.21|16.37|2.0
Warsaw|PL|52.23|21.01|1.8
Budapest|HU|47.50|19.04|1.8
Bucharest|RO|44.43|26.10|1.8
Quito|EC|-0.18|-78.47|2.8
Vancouver|CA|49.28|-123.12|2.6
Perth|AU|-31.95|115.86|2.1
Brisbane|AU|-27.47|153.03|2.6
Auckland|NZ|-36.85|174.76|1.7
Minsk|BY|53.90|27.57|2.0
Almaty|KZ|43.24|76.89|2.0
Novosibirsk|RU|55.01|82.93|1.6
Yekaterinburg|RU|56.84|60.60|1.5
Kazan|RU|55.79|49.12|1.3
Nizhny Novgorod|RU|56.33|44.00|1.2
Samara|RU|53.20|50.15|1.2
Omsk|RU|54.99|73.37|1.1
Chelyabinsk|RU|55.16|61.40|1.2
Krasnoyarsk|RU|56.01|92.87|1.1
Perm|RU|58.01|56.25|1.0
Munich|DE|48.14|11.58|1.6
Cologne|DE|50.94|6.96|1.1
Frankfurt|DE|50.11|8.68|0.8
Stuttgart|DE|48.78|9.18|0.6
Naples|IT|40.85|14.27|3.0
Turin|IT|45.07|7.69|1.7
Prague|CZ|50.08|14.44|1.3
Sofia|BG|42.70|23.32|1.3
Belgrade|RS|44.79|20.45|1.4
Stockholm|SE|59.33|18.07|1.6
Oslo|NO|59.91|10.75|1.1
Copenhagen|DK|55.68|12.57|1.4
Helsinki|FI|60.17|24.94|1.3
Amsterdam|NL|52.37|4.90|1.2
Rotterdam|NL|51.92|4.48|1.0
Brussels|BE|50.85|4.35|2.1
Dublin|IE|53.35|-6.26|1.4
Glasgow|GB|55.86|-4.25|1.0
Edinburgh|GB|55.95|-3.19|0.5
Leeds|GB|53.80|-1.55|0.8
Liverpool|GB|53.41|-2.98|0.9
Lyon|FR|45.76|4.84|1.7
Marseille|FR|43.30|5.37|1.6
Toulouse|FR|43.60|1.44|1.0
Nice|FR|43.70|7.27|1.0
Bordeaux|FR|44.84|-0.58|0.9
Lille|FR|50.63|3.06|1.2
Valencia|ES|39.47|-0.38|1.6
Seville|ES|37.39|-5.98|1.3
Bilbao|ES|43.26|-2.93|1.0
Porto|PT|41.15|-8.61|1.7
Zurich|CH|47.38|8.54|1.4
Geneva|CH|46.20|6.14|0.6
Krakow|PL|50.06|19.94|0.8
Wroclaw|PL|51.11|17.04|0.6
Riga|LV|56.95|24.11|0.6
Vilnius|LT|54.69|25.28|0.6
Tallinn|EE|59.44|24.75|0.4
Zagreb|HR|45.81|15.98|0.8
Ljubljana|SI|46.06|14.51|0.3
Thessaloniki|GR|40.64|22.94|1.0
Tbilisi|GE|41.72|44.79|1.2
Yerevan|AM|40.18|44.51|1.1
Reykjavik|IS|64.15|-21.94|0.23
Bergen|NO|60.39|5.32|0.29
Trondheim|NO|63.43|10.40|0.21
Tromso|NO|69.65|18.96|0.08
Hammerfest|NO|70.66|23.68|0.01
Alta|NO|69.97|23.27|0.02
Bodo|NO|67.28|14.40|0.05
Kiruna|SE|67.86|20.23|0.02
Lulea|SE|65.58|22.15|0.08
Umea|SE|63.83|20.26|0.13
Gothenburg|SE|57.71|11.97|1.0
Malmo|SE|55.60|13.00|0.7
Oulu|FI|65.01|25.47|0.21
Rovaniemi|FI|66.50|25.73|0.06
Tampere|FI|61.50|23.76|0.4
Turku|FI|60.45|22.27|0.3
Aarhus|DK|56.16|10.20|0.35
Murmansk|RU|68.97|33.08|0.27
Arkhangelsk|RU|64.54|40.54|0.35
Norilsk|RU|69.35|88.20|0.18
Yakutsk|RU|62.03|129.73|0.33
Vladivostok|RU|43.12|131.89|0.6
Irkutsk|RU|52.29|104.28|0.6
Nuuk|GL|64.18|-51.72|0.02
Anchorage|US|61.22|-149.90|0.4
Fairbanks|US|64.84|-147.72|0.1
Juneau|US|58.30|-134.42|0.03
Whitehorse|CA|60.72|-135.06|0.03
Yellowknife|CA|62.45|-114.37|0.02
Edmonton|CA|53.55|-113.49|1.4
Calgary|CA|51.05|-114.07|1.5
Winnipeg|CA|49.90|-97.14|0.8
Ottawa|CA|45.42|-75.70|1.4
Quebec City|CA|46.81|-71.21|0.8
Halifax|CA|44.65|-63.58|0.4
St. John's|CA|47.56|-52.71|0.2
Portland|US|45.52|-122.68|2.5
Las Vegas|US|36.17|-115.14|2.3
Salt Lake City|US|40.76|-111.89|1.3
Austin|US|30.27|-97.74|2.3
San Antonio|US|29.42|-98.49|2.6
New Orleans|US|29.95|-90.07|1.3
Nashville|US|36.16|-86.78|2.0
Charlotte|US|35.23|-80.84|2.7
Orlando|US|28.54|-81.38|2.7
Tampa|US|27.95|-82.46|3.2
St. Louis|US|38.63|-90.20|2.8
Kansas City|US|39.10|-94.58|2.2
Pittsburgh|US|40.44|-80.00|2.4
Baltimore|US|39.29|-76.61|2.8
Cleveland|US|41.50|-81.69|2.1
Honolulu|US|21.31|-157.86|1.0
Sacramento|US|38.58|-121.49|2.4
Albuquerque|US|35.08|-106.65|0.9
Tijuana|MX|32.51|-117.04|2.2
Puebla|MX|19.04|-98.21|3.2
Merida|MX|20.97|-89.62|1.3
Cancun|MX|21.16|-86.85|0.9
Guatemala City|GT|14.63|-90.51|3.0
San Salvador|SV|13.69|-89.22|1.1
Tegucigalpa|HN|14.07|-87.19|1.4
Managua|NI|12.11|-86.24|1.1
San Jose|CR|9.93|-84.08|1.4
Panama City|PA|8.98|-79.52|1.9
Santo Domingo|DO|18.49|-69.93|3.5
San Juan|PR|18.47|-66.11|2.4
Kingston|JM|17.97|-76.79|1.2
Port-au-Prince|HT|18.59|-72.31|2.8
Cali|CO|3.45|-76.53|2.8
Barranquilla|CO|10.96|-74.80|2.2
Cartagena|CO|10.39|-75.48|1.0
Maracaibo|VE|10.64|-71.64|2.2
La Paz|BO|-16.50|-68.15|1.9
Santa Cruz de la Sierra|BO|-17.78|-63.18|1.8
Asuncion|PY|-25.26|-57.58|2.3
Montevideo|UY|-34.90|-56.16|1.8
Cordoba|AR|-31.42|-64.18|1.6
Rosario|AR|-32.95|-60.64|1.3
Mendoza|AR|-32.89|-68.83|1.1
Mar del Plata|AR|-38.00|-57.56|0.6
Bahia Blanca|AR|-38.72|-62.27|0.3
Neuquen|AR|-38.95|-68.06|0.3
Bariloche|AR|-41.13|-71.31|0.13
Comodoro Rivadavia|AR|-45.86|-67.48|0.18
Rio Gallegos|AR|-51.62|-69.22|0.1
Ushuaia|AR|-54.80|-68.30|0.08
Punta Arenas|CL|-53.16|-70.91|0.13
Puerto Montt|CL|-41.47|-72.94|0.25
Valparaiso|CL|-33.05|-71.62|1.0
Concepcion|CL|-36.83|-73.05|1.0
Antofagasta|CL|-23.65|-70.40|0.4
Arequipa|PE|-16.41|-71.54|1.1
Cusco|PE|-13.53|-71.97|0.4
Manaus|BR|-3.12|-60.02|2.2
Belem|BR|-1.46|-48.50|2.5
Goiania|BR|-16.68|-49.25|2.6
Florianopolis|BR|-27.60|-48.55|1.2
Campinas|BR|-22.91|-47.06|3.3
Dakar|SN|14.72|-17.47|3.1
Bamako|ML|12.64|-8.00|2.8
Ouagadougou|BF|12.37|-1.52|2.8
Abuja|NG|9.08|7.40|3.5
Ibadan|NG|7.38|3.95|3.6
Douala|CM|4.05|9.77|3.7
Yaounde|CM|3.87|11.52|4.1
Kampala|UG|0.35|32.58|3.5
Kigali|RW|-1.94|30.06|1.2
Mombasa|KE|-4.04|39.67|1.3
Lusaka|ZM|-15.39|28.32|3.0
Harare|ZW|-17.83|31.05|2.1
Maputo|MZ|-25.97|32.57|1.1
Antananarivo|MG|-18.88|47.51|3.4
Durban|ZA|-29.86|31.02|3.2
Pretoria|ZA|-25.75|28.19|2.6
Port Elizabeth|ZA|-33.96|25.60|1.2
Windhoek|NA|-22.56|17.08|0.4
Gaborone|BW|-24.65|25.91|0.3
Tunis|TN|36.81|10.18|2.4
Tripoli|LY|32.89|13.19|1.2
Marrakesh|MA|31.63|-8.01|1.0
Rabat|MA|34.02|-6.83|1.9
Tel Aviv|IL|32.09|34.78|4.2
Jerusalem|IL|31.77|35.21|1.2
Amman|JO|31.95|35.93|4.0
Beirut|LB|33.89|35.50|2.4
Damascus|SY|33.51|36.28|2.5
Kuwait City|KW|29.38|47.99|3.1
Doha|QA|25.29|51.53|2.4
Abu Dhabi|AE|24.45|54.38|1.5
Muscat|OM|23.59|58.41|1.6
Isfahan|IR|32.65|51.67|2.2
Mashhad|IR|36.30|59.61|3.3
Islamabad|PK|33.68|73.05|1.2
Kathmandu|NP|27.72|85.32|1.5
Colombo|LK|6.93|79.86|2.3
Jaipur|IN|26.91|75.79|4.1
Lucknow|IN|26.85|80.95|3.8
Kochi|IN|9.93|76.27|2.1
Goa (Panaji)|IN|15.49|73.83|0.1
Varanasi|IN|25.32|82.97|1.6
Chiang Mai|TH|18.79|98.98|1.2
Phuket|TH|7.88|98.39|0.4
Phnom Penh|KH|11.56|104.92|2.3
Vientiane|LA|17.97|102.63|0.9
Da Nang|VN|16.05|108.22|1.2
Cebu|PH|10.32|123.89|3.0
Davao|PH|7.19|125.46|1.8
Surabaya|ID|-7.25|112.75|3.0
Bandung|ID|-6.92|107.62|2.6
Denpasar|ID|-8.65|115.22|0.9
Medan|ID|3.60|98.67|2.4
Makassar|ID|-5.15|119.43|1.5
Penang (George Town)|MY|5.41|100.33|0.8
Kaohsiung|TW|22.63|120.30|2.7
Sapporo|JP|43.06|141.35|2.0
Sendai|JP|38.27|140.87|1.1
Hiroshima|JP|34.39|132.46|1.2
Kyoto|JP|35.01|135.77|1.5
Naha|JP|26.21|127.68|0.3
Incheon|KR|37.46|126.71|3.0
Daegu|KR|35.87|128.60|2.4
Ulaanbaatar|MN|47.89|106.91|1.6
Kunming|CN|25.04|102.71|4.5
Xiamen|CN|24.48|118.09|3.7
Changsha|CN|28.23|112.94|4.4
Zhengzhou|CN|34.75|113.63|5.3
Lhasa|CN|29.65|91.12|0.6
Urumqi|CN|43.83|87.62|3.5
Adelaide|AU|-34.93|138.60|1.4
Canberra|AU|-35.28|149.13|0.5
Hobart|AU|-42.88|147.33|0.25
Darwin|AU|-12.46|130.84|0.15
Cairns|AU|-16.92|145.77|0.15
Gold Coast|AU|-28.02|153.40|0.7
Wellington|NZ|-41.29|174.78|0.4
Christchurch|NZ|-43.53|172.64|0.4
Dunedin|NZ|-45.87|170.50|0.13
Queenstown|NZ|-45.03|168.66|0.03
Invercargill|NZ|-46.41|168.35|0.06
Suva|FJ|-18.14|178.44|0.2
Noumea|NC|-22.27|166.46|0.2
Papeete|PF|-17.54|-149.57|0.14
Port Moresby|PG|-9.44|147.18|0.4
Stanley|FK|-51.69|-57.86|0.003
Port Louis|MU|-20.16|57.50|0.15
Victoria|SC|-4.62|55.45|0.03
Male|MV|4.18|73.51|0.2
"""


def _parse(table: str) -> tuple[BenchCity, ...]:
    cities = []
    for line in table.strip().splitlines():
        name, country, lat, lng, population = line.split("|")
        cities.append(BenchCity(name, country, float(lat), float(lng), float(population)))
    return tuple(cities)


CITIES: tuple[BenchCity, ...] = _parse(_TABLE)
